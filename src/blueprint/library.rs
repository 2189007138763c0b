//! A set of blueprint files (a directory, or files held in memory) in which
//! `metaapplyblueprint` entries find the blueprints they apply.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Blueprint, BlueprintError, MAX_BLUEPRINT_BYTES, parse};

/// Most files a directory may hold.
const MAX_FILES: usize = 10_000;
/// Deepest sub-directory searched.
const MAX_DEPTH: usize = 16;

/// One file of a [`Library`].
#[derive(Debug, Clone)]
pub(crate) struct LibraryFile {
    /// Path relative to the library's root (`/`-separated).
    pub rel: String,
    /// How errors name the file.
    pub display: String,
    /// The parsed blueprint, or why it could not be read.
    pub parsed: Result<Blueprint, BlueprintError>,
}

/// Blueprint files by name: a directory's `*.yaml` files (searched recursively, hidden
/// files and directories left out, as authentik does), or files given in memory.
#[derive(Debug, Clone, Default)]
pub struct Library {
    files: Vec<LibraryFile>,
}

/// Reads a file of at most [`MAX_BLUEPRINT_BYTES`] without reading more than that.
pub(crate) fn read_capped(path: &Path) -> Result<String, BlueprintError> {
    let display = path.display().to_string();
    let io = |e: std::io::Error| BlueprintError::Io {
        path: display.clone(),
        message: e.to_string(),
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_BLUEPRINT_BYTES as u64 {
        return Err(BlueprintError::TooLarge {
            file: display,
            size,
            limit: MAX_BLUEPRINT_BYTES as u64,
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_BLUEPRINT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > MAX_BLUEPRINT_BYTES {
        return Err(BlueprintError::TooLarge {
            file: display,
            size: bytes.len() as u64,
            limit: MAX_BLUEPRINT_BYTES as u64,
        });
    }
    String::from_utf8(bytes).map_err(|_| BlueprintError::Invalid {
        file: display.clone(),
        message: "the file is not UTF-8 text".into(),
    })
}

fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), BlueprintError> {
    let io = |e: std::io::Error| BlueprintError::Io {
        path: dir.display().to_string(),
        message: e.to_string(),
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            if depth < MAX_DEPTH {
                walk(root, &path, depth + 1, out)?;
            }
        } else if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            if out.len() >= MAX_FILES {
                return Err(BlueprintError::Io {
                    path: root.display().to_string(),
                    message: format!("more than {MAX_FILES} blueprint files"),
                });
            }
            out.push(path);
        }
    }
    Ok(())
}

impl Library {
    /// An empty library.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every `*.yaml` file under `dir`, in path order. A file that cannot be read or
    /// parsed is kept with its error (reported when it is applied or looked up by path).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, BlueprintError> {
        let root = dir.as_ref();
        let mut paths = Vec::new();
        walk(root, root, 0, &mut paths)?;
        let files = paths
            .into_iter()
            .map(|path| {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let display = path.display().to_string();
                let parsed = read_capped(&path).and_then(|text| parse(&display, &text));
                LibraryFile {
                    rel,
                    display,
                    parsed,
                }
            })
            .collect();
        Ok(Self { files })
    }

    /// Files given as `(path, text)`, e.g. for tests or embedded blueprints.
    pub fn from_files<P: Into<String>, T: AsRef<str>>(
        files: impl IntoIterator<Item = (P, T)>,
    ) -> Self {
        let mut files: Vec<LibraryFile> = files
            .into_iter()
            .map(|(path, text)| {
                let rel: String = path.into();
                let parsed = parse(&rel, text.as_ref());
                LibraryFile {
                    display: rel.clone(),
                    rel,
                    parsed,
                }
            })
            .collect();
        files.sort_by(|a, b| a.rel.cmp(&b.rel));
        Self { files }
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// `(relative path, metadata.name)` of every file that parsed.
    pub fn names(&self) -> Vec<(&str, Option<&str>)> {
        self.files
            .iter()
            .filter_map(|f| f.parsed.as_ref().ok().map(|b| (f.rel.as_str(), b.name())))
            .collect()
    }

    pub(crate) fn files(&self) -> &[LibraryFile] {
        &self.files
    }

    /// The file whose `metadata.name` is `name`.
    pub(crate) fn by_name(&self, name: &str) -> Option<&LibraryFile> {
        self.files
            .iter()
            .find(|f| matches!(&f.parsed, Ok(b) if b.name() == Some(name)))
    }

    /// The file at this relative path.
    pub(crate) fn by_path(&self, rel: &str) -> Option<&LibraryFile> {
        let rel = rel.trim_start_matches("./");
        self.files.iter().find(|f| f.rel == rel)
    }
}
