//! The reconciler.
