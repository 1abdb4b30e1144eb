//! The user_data namespace.
//!
//! Owns the split of the 64-bit `user_data` space between the caller and
//! this crate. Callers may use any value up to [`USER_DATA_MAX`] (the top two
//! bits clear); every value with the top bit set belongs to this crate's own
//! operations (wake-ups, cancels) and must never be reported to the caller as
//! a user completion. This module must never accept a caller value that
//! collides with an internal one.
//!
//! Layout of an internal value:
//!
//! ```text
//! bit 63 = 1 (internal)
//!   bit 62 = 1: a cancel by user_data; bits 0..62 are the target
//!   bit 62 = 0: bits 56..62 are the kind, bits 0..32 the fd for cancel-by-fd
//! ```

use std::os::fd::RawFd;

/// The largest `user_data` a caller may use: the top two bits are reserved.
pub const USER_DATA_MAX: u64 = (1 << 62) - 1;

const INTERNAL: u64 = 1 << 63;
const CANCEL_BY_USER_DATA: u64 = 1 << 62;
const KIND_SHIFT: u32 = 56;
const KIND_MASK: u64 = 0x3f;

const KIND_WAKE_NOP: u64 = 1;
const KIND_WAKE_EVENTFD: u64 = 2;
const KIND_CANCEL_FD: u64 = 3;
const KIND_CANCEL_ANY: u64 = 4;

/// Whether `user_data` is free for a caller to use.
#[inline]
pub fn is_user(user_data: u64) -> bool {
    user_data <= USER_DATA_MAX
}

/// What a CQE's user_data says it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    /// A caller's operation.
    User(u64),
    /// A wake-up NOP.
    WakeNop,
    /// The armed read on the wake eventfd.
    WakeEventFd,
    /// A cancel by user_data, with its target.
    Cancel(u64),
    /// A cancel of everything on an fd.
    CancelFd(RawFd),
    /// The cancel-everything issued when the ring is dropped.
    CancelAny,
    /// Internal bit set but no known kind: a bug; logged and dropped.
    Unknown(u64),
}

impl Tag {
    /// The user_data that carries this tag.
    pub(crate) fn encode(self) -> u64 {
        match self {
            Tag::User(v) => v,
            Tag::WakeNop => INTERNAL | (KIND_WAKE_NOP << KIND_SHIFT),
            Tag::WakeEventFd => INTERNAL | (KIND_WAKE_EVENTFD << KIND_SHIFT),
            Tag::Cancel(target) => INTERNAL | CANCEL_BY_USER_DATA | (target & USER_DATA_MAX),
            Tag::CancelFd(fd) => INTERNAL | (KIND_CANCEL_FD << KIND_SHIFT) | u64::from(fd as u32),
            Tag::CancelAny => INTERNAL | (KIND_CANCEL_ANY << KIND_SHIFT),
            Tag::Unknown(v) => v,
        }
    }

    /// Reads the tag back from a CQE's user_data.
    pub(crate) fn decode(user_data: u64) -> Tag {
        if user_data & INTERNAL == 0 {
            return Tag::User(user_data);
        }
        if user_data & CANCEL_BY_USER_DATA != 0 {
            return Tag::Cancel(user_data & USER_DATA_MAX);
        }
        match (user_data >> KIND_SHIFT) & KIND_MASK {
            KIND_WAKE_NOP => Tag::WakeNop,
            KIND_WAKE_EVENTFD => Tag::WakeEventFd,
            KIND_CANCEL_FD => Tag::CancelFd(user_data as u32 as i32),
            KIND_CANCEL_ANY => Tag::CancelAny,
            _ => Tag::Unknown(user_data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for tag in [
            Tag::User(0),
            Tag::User(USER_DATA_MAX),
            Tag::WakeNop,
            Tag::WakeEventFd,
            Tag::Cancel(0),
            Tag::Cancel(USER_DATA_MAX),
            Tag::CancelFd(0),
            Tag::CancelFd(i32::MAX),
            Tag::CancelAny,
        ] {
            assert_eq!(Tag::decode(tag.encode()), tag);
        }
    }

    #[test]
    fn reserved_values_are_not_user() {
        assert!(is_user(USER_DATA_MAX));
        assert!(!is_user(USER_DATA_MAX + 1));
        assert!(!is_user(u64::MAX));
        assert!(!is_user(Tag::WakeNop.encode()));
    }
}
