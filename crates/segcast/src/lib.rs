//! segcast core library.
