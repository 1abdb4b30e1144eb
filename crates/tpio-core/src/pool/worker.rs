//! A pool worker's loop: what it takes next (its own queue, the shared
//! queue's higher priorities and its turn, then stealing), when it parks in
//! its driver or waits on the pool's condition variable, and when it exits.
//!
//! Owns the order in which a worker looks for work. It must never run a
//! callback itself (`PoolInner::run` does) nor decide whether a completion
//! gets one (`io_object`).

use super::{Parked, PoolInner, PoolState, Work, MINE};
use crate::local_queue::LocalQueue;
use crate::parker::{self, Parker};
use crate::stats::Stats;
use crate::sync::{Arc, Ordering};
use crate::Priority;

/// A worker takes from the pool's shared queue before its own at least
/// every this many takes, so work queued by other threads is never starved
/// by a worker's own chain of callbacks.
const FAIR_EVERY: u32 = 32;

/// A worker with operations of its own in flight still steals when another
/// worker has more than this many callbacks queued beyond twice its own
/// count in flight: the chains of operations are then lopsided (W1's 64
/// chains split 54/10 at the start ran 20–30 % slower than 32/32, the
/// worker with few submitting small batches), and steals move chains over
/// until the longer queue is within this margin of twice the other's in
/// flight. Balanced workers never steal from each other, so each chain
/// keeps to its worker.
const LOPSIDED: usize = 8;

impl PoolInner {
    /// Queued work of the worker with the most queued, for an idle worker
    /// with nothing of its own in flight (it would only wait): the newer
    /// half of that queue, as an idle Windows worker takes what the port
    /// holds. It runs the first now and keeps the rest in its own queue (in
    /// the shared one if it has no parker: no rescue would look after
    /// them). One with operations in flight waits for them instead, so each
    /// chain of operations keeps to its worker, unless the queues are
    /// lopsided ([`LOPSIDED`]); work that waits too long behind a busy
    /// worker is shared by the rescue.
    fn steal(
        this: &Arc<Self>,
        st: &mut PoolState,
        me: &LocalQueue,
        parker: Option<&std::sync::Arc<dyn Parker>>,
    ) -> Option<(Work, Priority)> {
        let victim = st
            .locals
            .iter()
            .filter(|l| l.worker != me.worker)
            .max_by_key(|l| l.len())?;
        let mut got = victim.steal_half().into_iter();
        let first = got.next()?;
        let rest: Vec<_> = got.collect();
        Stats::add(&this.stats.callbacks_stolen, 1 + rest.len() as u64);
        if !rest.is_empty() {
            let epoch = this.epoch.now();
            let mut shared = false;
            for (w, p) in rest {
                // Its own queue only with a parker: no rescue would look
                // after it otherwise.
                let kept = match parker {
                    Some(_) => me.push(p, w, epoch),
                    None => Err(w),
                };
                if let Err(w) = kept {
                    st.queues[p as usize].push_back(w);
                    shared = true;
                }
            }
            if shared {
                Self::publish_mask(this, st);
            } else {
                parker::kept_current();
                Self::list_for_rescue(this);
            }
        }
        Some(first)
    }

    /// Whether another worker has more than [`LOPSIDED`] callbacks queued
    /// beyond twice `outstanding`, the operations `me` has in flight.
    fn lopsided(st: &PoolState, me: &LocalQueue, outstanding: usize) -> bool {
        st.locals
            .iter()
            .filter(|l| l.worker != me.worker)
            .any(|l| l.len() > 2 * outstanding + LOPSIDED)
    }

    /// A worker's next work, without the pool's lock: from its own queue,
    /// unless the shared queue has work of a higher priority or it is the
    /// shared queue's turn (every [`FAIR_EVERY`] takes).
    fn next_own(this: &Self, local: &LocalQueue, tick: &mut u32) -> Option<Work> {
        *tick = tick.wrapping_add(1);
        let shared = this.shared_mask.load(Ordering::Relaxed);
        if shared != 0 && *tick % FAIR_EVERY == 0 {
            return None;
        }
        local.pop_unless_outranked(shared).map(|(w, _)| w)
    }

    pub(super) fn worker_main(this: Arc<Self>, me: u64) {
        parker::enter_worker(this.id, me);
        let local = LocalQueue::new(me);
        this.state.lock().locals.push(local.clone());
        MINE.with(|m| *m.borrow_mut() = Some((this.clone(), local.clone())));
        let mut tick = 0u32;
        loop {
            if let Some(w) = Self::next_own(&this, &local, &mut tick) {
                PoolInner::run(&this, w);
                parker::between_callbacks();
                continue;
            }
            let mut st = this.state.lock();
            let work = loop {
                if let Some(w) = Self::pop(&this, &mut st) {
                    break Some(w);
                }
                // What its own delivery queued while it was parked.
                if let Some(w) = local.pop_unless_outranked(0) {
                    break Some(w);
                }
                let parker = parker::current_parker();
                let may_exit = |p: &Option<std::sync::Arc<dyn Parker>>| {
                    p.as_ref().map_or(true, |p| p.may_exit())
                };
                let outstanding = parker.as_ref().map_or(0, |p| p.outstanding());
                let hungry = outstanding == 0 || Self::lopsided(&st, &local, outstanding);
                if hungry {
                    if let Some(w) = Self::steal(&this, &mut st, &local, parker.as_ref()) {
                        break Some(w);
                    }
                }
                if st.shutdown && may_exit(&parker) {
                    break None;
                }
                st.idle += 1;
                let timeout = st.idle_timeout;
                let timed_out = match &parker {
                    None => {
                        st.cv_waiters += 1;
                        Self::count_hungry(&this, &st);
                        let timed_out = this.work_cv.wait_for(&mut st, timeout).timed_out();
                        st.cv_waiters -= 1;
                        Self::count_hungry(&this, &st);
                        timed_out
                    }
                    Some(p) => {
                        st.parked.push(Parked {
                            worker: me,
                            parker: p.clone(),
                            hungry,
                        });
                        Self::count_hungry(&this, &st);
                        drop(st);
                        let t0 = std::time::Instant::now();
                        parker::begin_park(this.id, me);
                        p.park(timeout);
                        let unidled = parker::end_park();
                        let timed_out = t0.elapsed() >= timeout;
                        st = this.state.lock();
                        if unidled {
                            // Taken by its own delivery (`push`): already
                            // counted busy and out of `parked`.
                            st.idle += 1;
                        } else {
                            st.parked.retain(|p| p.worker != me);
                            Self::count_hungry(&this, &st);
                        }
                        timed_out
                    }
                };
                st.idle -= 1;
                if timed_out
                    && st.queues.iter().all(|q| q.is_empty())
                    && local.len() == 0
                    && st.threads > st.min
                    && may_exit(&parker)
                {
                    break None;
                }
            };
            let Some((work, _prio)) = work else {
                st.threads -= 1;
                st.locals.retain(|l| l.worker != me);
                // A delivery made for this worker since it last looked.
                let left = local.retire();
                if !left.is_empty() {
                    for (w, p) in left {
                        st.queues[p as usize].push_back(w);
                    }
                    Self::publish_mask(&this, &st);
                    PoolInner::wake_or_grow(&this, &mut st);
                }
                drop(st);
                MINE.with(|m| m.borrow_mut().take());
                parker::leave_worker();
                return;
            };
            // More work waiting and nobody free to take it: grow.
            if st.idle == 0 && st.threads < st.max && st.queues.iter().any(|q| !q.is_empty()) {
                PoolInner::wake_or_grow(&this, &mut st);
            }
            drop(st);
            PoolInner::run(&this, work);
            parker::between_callbacks();
        }
    }
}
