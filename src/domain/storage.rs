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
    /// The store cannot be reached or cannot make a write durable now (the database is down,
    /// restarting or out of connections; the disk is full): nothing was done, and the same
    /// request may succeed in a moment. Distinct from `Backend`, a failure that retrying the
    /// same request would not cure.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A write made under a lease that a newer holder has taken since (its fence's token
    /// superseded): nothing was written. The process that made it no longer leads, whatever it
    /// believed when it began; the work is the new holder's.
    #[error("a newer holder has the lease this write was made under")]
    Fenced,
    #[error("storage failed: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
