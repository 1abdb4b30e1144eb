//! The mio driver of tpio (being built): readiness turned into completions
//! for pipes and sockets, regular files on a bounded set of blocking workers.
