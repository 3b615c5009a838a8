//! A local keystore: one JSON file per named key in a directory, files at mode 0600 and the
//! directory at 0700. The CLI writes the node's dev accounts here; the CLI and engines read it.
//!
//! File `NAME.json`: `{"name", "secret_key" (hex), "public_key" (hex x-only), "account_id"
//! (base58)}`. Writes go to a temporary file that is renamed into place, so a crash never leaves
//! a half-written key.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use paystreams_lez_core::{
    AccountId,
    crypto::{SecretKey, secret_key_from_hex},
};
use serde::{Deserialize, Serialize};

/// Longest key name.
pub const KEY_NAME_MAX_LEN: usize = 64;

/// Why a keystore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("key name {0:?} is invalid: use 1-64 letters, digits, '-', '_' or '.' (not starting with '.')")]
    InvalidName(String),
    #[error(
        "no key named {name:?} in {dir}; list keys with `paystream keys list` or create one with `paystream keys new {name}`"
    )]
    NotFound { name: String, dir: PathBuf },
    #[error("a key named {name:?} already exists in {dir}; pick another name")]
    AlreadyExists { name: String, dir: PathBuf },
    #[error("key file {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("keystore I/O on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    name: String,
    secret_key: String,
    public_key: String,
    account_id: AccountId,
}

/// A named key.
#[derive(Clone, Debug)]
pub struct NamedKey {
    pub name: String,
    pub key: SecretKey,
}

impl NamedKey {
    #[must_use]
    pub fn account_id(&self) -> AccountId {
        self.key.account_id()
    }
}

/// What [`Keystore::scan`] found: the keys, and the files that looked like keys but are not.
#[derive(Clone, Debug, Default)]
pub struct KeyScan {
    pub keys: Vec<NamedKey>,
    pub skipped: Vec<SkippedFile>,
}

/// A `*.json` file in the keystore that is not a readable key.
#[derive(Clone, Debug)]
pub struct SkippedFile {
    pub path: PathBuf,
    /// Why it is not a key.
    pub reason: String,
}

impl std::fmt::Display for SkippedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not a key ({}); skipped — move it out of the keystore", self.path.display(), self.reason)
    }
}

/// A keystore directory.
#[derive(Clone, Debug)]
pub struct Keystore {
    dir: PathBuf,
}

/// The default keystore: `$PAYSTREAMS_HOME/keystore`, else the user data dir's
/// `paystreams/keystore`.
#[must_use]
pub fn default_keystore_dir() -> PathBuf {
    default_home().join("keystore")
}

/// `$PAYSTREAMS_HOME`, else `<data dir>/paystreams` (e.g. `~/.local/share/paystreams`).
#[must_use]
pub fn default_home() -> PathBuf {
    if let Some(home) = std::env::var_os("PAYSTREAMS_HOME") {
        return PathBuf::from(home);
    }
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("paystreams")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= KEY_NAME_MAX_LEN
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io { path: path.to_path_buf(), source }
}

impl Keystore {
    /// Opens (creating if needed) the keystore at `dir`.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KeystoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
        }
        Ok(Self { dir })
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Stores `key` under `name`; refuses to overwrite.
    ///
    /// # Errors
    /// Invalid name, existing key, or I/O failure.
    pub fn insert(&self, name: &str, key: &SecretKey) -> Result<NamedKey, KeystoreError> {
        if !valid_name(name) {
            return Err(KeystoreError::InvalidName(name.to_owned()));
        }
        let path = self.path(name);
        if path.exists() {
            return Err(KeystoreError::AlreadyExists { name: name.to_owned(), dir: self.dir.clone() });
        }
        let file = KeyFile {
            name: name.to_owned(),
            secret_key: hex::encode(key.to_bytes()),
            public_key: key.public_key().to_string(),
            account_id: key.account_id(),
        };
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|e| KeystoreError::Corrupt { path: path.clone(), detail: e.to_string() })?;
        let tmp = self.dir.join(format!(".{name}.json.tmp"));
        {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut handle = options.open(&tmp).map_err(io_err(&tmp))?;
            handle.write_all(&json).map_err(io_err(&tmp))?;
            handle.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        Ok(NamedKey { name: name.to_owned(), key: key.clone() })
    }

    /// Generates and stores a fresh key.
    ///
    /// # Errors
    /// As [`Keystore::insert`].
    pub fn generate(&self, name: &str) -> Result<NamedKey, KeystoreError> {
        self.insert(name, &SecretKey::generate())
    }

    /// Loads the key `name`.
    ///
    /// # Errors
    /// Unknown or corrupt key.
    pub fn get(&self, name: &str) -> Result<NamedKey, KeystoreError> {
        if !valid_name(name) {
            return Err(KeystoreError::InvalidName(name.to_owned()));
        }
        let path = self.path(name);
        if !path.exists() {
            return Err(KeystoreError::NotFound { name: name.to_owned(), dir: self.dir.clone() });
        }
        Self::read(&path)
    }

    fn read(path: &Path) -> Result<NamedKey, KeystoreError> {
        let corrupt = |detail: String| KeystoreError::Corrupt { path: path.to_path_buf(), detail };
        let bytes = fs::read(path).map_err(io_err(path))?;
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let key = secret_key_from_hex(&file.secret_key).map_err(|e| corrupt(e.to_string()))?;
        if key.account_id() != file.account_id {
            return Err(corrupt("account_id does not match the secret key".to_owned()));
        }
        Ok(NamedKey { name: file.name, key })
    }

    /// Every key, sorted by name; `*.json` files that are not keys are skipped with a warning
    /// in the log (see [`Keystore::scan`]).
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn list(&self) -> Result<Vec<NamedKey>, KeystoreError> {
        let scan = self.scan()?;
        for skipped in &scan.skipped {
            tracing::warn!(path = %skipped.path.display(), reason = %skipped.reason, "keystore file is not a key; skipped");
        }
        Ok(scan.keys)
    }

    /// Every key, sorted by name, and the `*.json` files in the directory that are not keys (a
    /// stray file, a half-edited key), with why: one bad file never hides the other keys.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn scan(&self) -> Result<KeyScan, KeystoreError> {
        let mut scan = KeyScan::default();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let path = entry.map_err(io_err(&self.dir))?.path();
            let is_key = path.extension().is_some_and(|e| e == "json")
                && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.'));
            if is_key {
                match Self::read(&path) {
                    Ok(key) => scan.keys.push(key),
                    Err(KeystoreError::Corrupt { detail, .. }) => {
                        scan.skipped.push(SkippedFile { path, reason: detail })
                    }
                    Err(KeystoreError::Io { source, .. }) => {
                        scan.skipped.push(SkippedFile { path, reason: source.to_string() });
                    }
                    Err(other) => scan.skipped.push(SkippedFile { path, reason: other.to_string() }),
                }
            }
        }
        scan.keys.sort_by(|a, b| a.name.cmp(&b.name));
        scan.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(scan)
    }

    /// Saves a chain's dev keys as `dev-<i>`; an existing same-named file with another key is
    /// kept and the new key goes to `dev-<i>-<first 8 chars of its id>`. Returns the name each
    /// key is saved under, in order (a key with no free name is skipped, with a warning).
    ///
    /// # Errors
    /// I/O failure while writing a key.
    pub fn save_dev_keys(&self, keys: &[SecretKey]) -> Result<Vec<String>, KeystoreError> {
        let mut names = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let id = key.account_id().to_string();
            let short: String = id.chars().take(8).collect();
            let mut saved = None;
            for name in [format!("dev-{i}"), format!("dev-{i}-{short}")] {
                match self.get(&name) {
                    Ok(existing) if existing.key.to_bytes() == key.to_bytes() => {
                        saved = Some(name);
                        break;
                    }
                    Ok(_) => {}
                    Err(KeystoreError::NotFound { .. }) => {
                        self.insert(&name, key)?;
                        saved = Some(name);
                        break;
                    }
                    // A corrupt file under this name: leave it alone and try the next name.
                    Err(e) => tracing::warn!(name, error = %e, "keystore entry unreadable; not overwriting"),
                }
            }
            match saved {
                Some(name) => names.push(name),
                None => tracing::warn!(account = %id, "no free keystore name for dev key {i}; not saved"),
            }
        }
        Ok(names)
    }

    /// Finds a key by name or by base58 account id.
    ///
    /// # Errors
    /// When neither matches.
    pub fn resolve(&self, name_or_id: &str) -> Result<NamedKey, KeystoreError> {
        if let Ok(id) = name_or_id.parse::<AccountId>()
            && let Some(found) = self.list()?.into_iter().find(|k| k.account_id() == id)
        {
            return Ok(found);
        }
        self.get(name_or_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_private_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Keystore::open(dir.path().join("ks")).expect("open");
        let created = store.generate("alice").expect("generate");
        let loaded = store.get("alice").expect("get");
        assert_eq!(created.account_id(), loaded.account_id());
        assert_eq!(store.resolve(&created.account_id().to_string()).expect("by id").name, "alice");
        assert!(matches!(store.generate("alice"), Err(KeystoreError::AlreadyExists { .. })));
        assert!(matches!(store.get("bob"), Err(KeystoreError::NotFound { .. })));
        assert!(matches!(store.generate("../x"), Err(KeystoreError::InvalidName(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(store.dir().join("alice.json")).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(store.list().expect("list").len(), 1);
    }

    #[test]
    fn files_that_are_not_keys_are_skipped_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Keystore::open(dir.path()).expect("open");
        store.generate("alice").expect("generate");
        fs::write(dir.path().join("notes.json"), b"{\"todo\": 1}").expect("write");
        fs::write(dir.path().join("broken.json"), b"not json").expect("write");
        let scan = store.scan().expect("scan");
        assert_eq!(scan.keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["alice"]);
        let skipped: Vec<String> = scan.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].contains("broken.json") && skipped[1].contains("notes.json"), "{skipped:?}");
        assert_eq!(store.list().expect("list").len(), 1);
        assert_eq!(store.resolve("alice").expect("resolve").name, "alice");
    }
}
