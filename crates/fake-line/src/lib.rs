//! Fake LINE Messaging API.
