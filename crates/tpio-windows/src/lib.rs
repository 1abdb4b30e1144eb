//! Native driver of tpio: kernel32's thread-pool I/O (TP_IO) through
//! `windows-sys`. Only built on Windows; on every other target this crate is
//! empty.
#![cfg_attr(not(windows), allow(unused))]
