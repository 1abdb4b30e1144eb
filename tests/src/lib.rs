//! Shared helpers for the conformance and property tests.
