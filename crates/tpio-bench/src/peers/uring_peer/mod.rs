//! Plain io_uring (the `io-uring` crate, no tpio): the ceilings tpio is
//! measured against. One file per workload.
//!
//! Every loop here reaps all it submitted before it returns, so no buffer
//! is freed under the kernel.

pub mod cancel;
pub mod echo;
pub mod reads;
