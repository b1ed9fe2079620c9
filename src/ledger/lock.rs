//! One writer per ledger, however its path is spelled.
//!
//! The lock is an exclusive `flock` on the database file itself: every path that reaches the
//! file (a symlink, a relative path, a bind mount) reaches the same lock, and nobody can
//! delete the lock without deleting the ledger. SQLite's own locks are POSIX record locks,
//! which Linux keeps apart from `flock`, so the two never interfere.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::{LedgerError, Result};

pub(crate) struct WriterLock {
    /// Closing this descriptor releases the lock.
    _file: File,
}

impl WriterLock {
    /// Creates the ledger file (owner-only) when it does not exist yet, and locks it.
    pub(crate) fn acquire(path: &Path) -> Result<WriterLock> {
        let open_error = |message: String| LedgerError::Open {
            path: path.display().to_string(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                open_error(format!("cannot create folder {}: {e}", parent.display()))
            })?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(path)
            .map_err(|e| open_error(format!("cannot open: {e}")))?;
        if !file
            .metadata()
            .map_err(|e| open_error(format!("cannot read its metadata: {e}")))?
            .is_file()
        {
            return Err(open_error("not a regular file".into()));
        }
        restrict_permissions(path);
        match file.try_lock() {
            Ok(()) => Ok(WriterLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LedgerError::Locked {
                path: path.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(open_error(format!("cannot lock: {e}"))),
        }
    }
}

/// The ledger names events and their history: owner-only, like the bundles. A file created
/// by an older binary, or copied in by hand, is narrowed too.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_through_a_symlink_is_refused_and_released_with_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let link = dir.path().join("other-name.sqlite");
        let first = WriterLock::acquire(&path).unwrap();
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            WriterLock::acquire(&link),
            Err(LedgerError::Locked { .. })
        ));
        drop(first);
        assert!(WriterLock::acquire(&link).is_ok());
    }

    #[test]
    fn a_folder_is_not_a_ledger() {
        let dir = tempfile::tempdir().unwrap();
        assert!(WriterLock::acquire(dir.path()).is_err());
    }
}
