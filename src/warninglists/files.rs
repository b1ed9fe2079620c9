//! Which files of a folder are warninglists.
//!
//! MISP reads `lists/<name>/list.json` of its `misp-warninglists` checkout
//! (`Warninglist::update`, one `list.json` per folder under `lists/`). A folder with a `lists/`
//! folder is read that way only, so the repository's own `schema.json` is never taken for a
//! list. A folder without one is read leniently, for operators who mount the `lists/` folder
//! itself or keep their own lists as single files: every `<name>/list.json` and every
//! `<name>.json` directly in it. Names starting with a dot are skipped. Files are read in name
//! order, as MISP's `glob` returns them.

use std::path::{Path, PathBuf};

use super::error::WarninglistError;

pub(super) struct Found {
    pub(super) files: Vec<PathBuf>,
    pub(super) warnings: Vec<String>,
}

pub(super) fn list_files(folder: &Path) -> Result<Found, WarninglistError> {
    let folder_error = |reason: String| WarninglistError::Folder {
        folder: folder.to_path_buf(),
        reason,
    };
    let metadata = std::fs::metadata(folder).map_err(|error| folder_error(error.to_string()))?;
    if !metadata.is_dir() {
        return Err(folder_error("not a folder".to_string()));
    }
    let repository_lists = folder.join("lists");
    let mut found = Found {
        files: Vec::new(),
        warnings: Vec::new(),
    };
    if repository_lists.is_dir() {
        for entry in sorted_entries(&repository_lists)? {
            if !entry.is_dir() {
                continue;
            }
            let list = entry.join("list.json");
            if list.is_file() {
                found.files.push(list);
            } else {
                found.warnings.push(format!(
                    "warninglists: {} has no list.json: skipped",
                    entry.display()
                ));
            }
        }
    } else {
        for entry in sorted_entries(folder)? {
            if entry.is_dir() {
                let list = entry.join("list.json");
                if list.is_file() {
                    found.files.push(list);
                }
            } else if entry.extension().is_some_and(|ext| ext == "json") && entry.is_file() {
                found.files.push(entry);
            }
        }
    }
    if found.files.is_empty() {
        return Err(WarninglistError::Empty {
            folder: folder.to_path_buf(),
        });
    }
    Ok(found)
}

/// The visible entries of `folder`, sorted by name.
fn sorted_entries(folder: &Path) -> Result<Vec<PathBuf>, WarninglistError> {
    let read_error = |error: std::io::Error| WarninglistError::Folder {
        folder: folder.to_path_buf(),
        reason: error.to_string(),
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        entries.push(entry.path());
    }
    entries.sort();
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "{}").unwrap();
    }

    fn names(found: &Found, root: &Path) -> Vec<String> {
        found
            .files
            .iter()
            .map(|file| file.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn the_repository_layout_reads_only_lists_and_warns_of_a_folder_without_a_list() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("schema.json"));
        write(&dir.path().join("lists/b-list/list.json"));
        write(&dir.path().join("lists/a-list/list.json"));
        write(&dir.path().join("lists/a-list/README.json"));
        write(&dir.path().join("lists/.hidden/list.json"));
        std::fs::create_dir_all(dir.path().join("lists/empty")).unwrap();
        let found = list_files(dir.path()).unwrap();
        assert_eq!(
            names(&found, dir.path()),
            ["lists/a-list/list.json", "lists/b-list/list.json"]
        );
        assert_eq!(found.warnings.len(), 1);
        assert!(found.warnings[0].contains("empty"), "{:?}", found.warnings);
    }

    #[test]
    fn without_a_lists_folder_list_folders_and_json_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("mine.json"));
        write(&dir.path().join("rfc1918/list.json"));
        write(&dir.path().join("notes.txt"));
        write(&dir.path().join("other/readme.json"));
        let found = list_files(dir.path()).unwrap();
        assert_eq!(
            names(&found, dir.path()),
            ["mine.json", "rfc1918/list.json"]
        );
    }

    #[test]
    fn a_missing_file_or_list_less_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let error = list_files(&dir.path().join("absent")).err().unwrap();
        assert!(error.to_string().contains("absent"), "{error}");
        write(&dir.path().join("file.txt"));
        let error = list_files(&dir.path().join("file.txt")).err().unwrap();
        assert!(error.to_string().contains("not a folder"), "{error}");
        let error = list_files(dir.path()).err().unwrap();
        assert!(matches!(error, WarninglistError::Empty { .. }), "{error}");
    }
}
