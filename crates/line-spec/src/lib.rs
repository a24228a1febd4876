//! LINE OpenAPI spec validation.
