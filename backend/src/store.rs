//! The profile store (being built): sled metadata and Parquet samples.

use std::path::Path;

/// The opened store.
pub struct Store {
    _db: sled::Db,
}

/// Why the store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The metadata database failed.
    #[error("metadata store: {0}")]
    Sled(#[from] sled::Error),
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Ok(Store { _db: sled::open(dir.join("meta"))? })
    }
}
