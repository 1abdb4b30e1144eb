//! tpio as a contestant: the safe layer ([`tpio::ThreadpoolIo`]) used as an
//! application would, each callback issuing the next operation.
//!
//! One file per workload. A callback reaches its own object through a
//! `Weak` to the state that holds it (the safe layer's callback does not
//! receive its `ThreadpoolIo`), so the object is closed when the run ends.

pub mod cancel;
pub mod echo;
pub mod lifecycle;
pub mod reads;
