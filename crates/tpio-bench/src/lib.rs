//! tpio's benchmark (being built): workloads W1–W4 run side by side with the
//! peers, ratios printed against tpio.
