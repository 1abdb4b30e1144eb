//! tpio-core
