//! Placeholder; see the issues.
