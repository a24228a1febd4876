//! Local GCP stack.
