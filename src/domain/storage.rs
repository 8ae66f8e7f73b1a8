//! What every layer's store answers: its records, or one of these errors.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The organisation already has a shipment with this reference; its id is given.
    #[error("the reference is already registered as shipment {0}")]
    DuplicateReference(String),
    /// Another writer saved the record since it was read (its version moved on): nothing was
    /// written; read it again and re-apply the change.
    #[error("the record changed since it was read")]
    Conflict,
    #[error("storage failed: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
