//! Why a folder of warninglists cannot be used. Every message is one line naming the folder or
//! the list file, and for a bad list the field.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarninglistError {
    #[error("cannot use warninglists folder {}: {reason}", .folder.display())]
    Folder { folder: PathBuf, reason: String },
    #[error(
        "no warninglist in {}: expected MISP's layout lists/<name>/list.json, or <name>/list.json or <name>.json directly in it",
        .folder.display()
    )]
    Empty { folder: PathBuf },
    #[error("cannot read warninglist {}: {reason}", .file.display())]
    Read { file: PathBuf, reason: String },
    #[error("warninglist {} is not a list.json object: {reason}", .file.display())]
    Json { file: PathBuf, reason: String },
    #[error("warninglist {}: field `{field}`: {problem}", .file.display())]
    Field {
        file: PathBuf,
        field: String,
        problem: String,
    },
    #[error(
        "warninglists {} and {} are both named {name:?}: MISP keeps only the first, remove one",
        .first.display(), .second.display()
    )]
    DuplicateName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("the warninglists cannot be compiled: {reason}")]
    Compile { reason: String },
}

impl WarninglistError {
    pub(super) fn field(file: &std::path::Path, field: impl Into<String>, problem: String) -> Self {
        WarninglistError::Field {
            file: file.to_path_buf(),
            field: field.into(),
            problem,
        }
    }
}
