//! Session keys: one fresh key per proposal, kept only while its session lives.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    sync::Mutex,
};

use paystreams_lez_core::crypto::SecretKey;

/// A key-store failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("session key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("session key file {0} is corrupt")]
    Corrupt(String),
    #[error("key store lock poisoned")]
    Poisoned,
}

/// Where session keys live, by a label (the session's id in hex).
pub trait KeyStore: Send + Sync {
    /// # Errors
    /// Storage failures.
    fn put(&self, label: &str, key: &SecretKey) -> Result<(), KeyStoreError>;
    /// # Errors
    /// Storage failures or a corrupt key.
    fn get(&self, label: &str) -> Result<Option<SecretKey>, KeyStoreError>;
    /// # Errors
    /// Storage failures.
    fn remove(&self, label: &str) -> Result<(), KeyStoreError>;
}

/// Keys in memory (tests).
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    keys: Mutex<BTreeMap<String, [u8; 32]>>,
}

impl KeyStore for MemoryKeyStore {
    fn put(&self, label: &str, key: &SecretKey) -> Result<(), KeyStoreError> {
        self.keys.lock().map_err(|_| KeyStoreError::Poisoned)?.insert(label.to_owned(), key.to_bytes());
        Ok(())
    }

    fn get(&self, label: &str) -> Result<Option<SecretKey>, KeyStoreError> {
        let keys = self.keys.lock().map_err(|_| KeyStoreError::Poisoned)?;
        keys.get(label)
            .map(|b| SecretKey::from_bytes(b).map_err(|_| KeyStoreError::Corrupt(label.to_owned())))
            .transpose()
    }

    fn remove(&self, label: &str) -> Result<(), KeyStoreError> {
        self.keys.lock().map_err(|_| KeyStoreError::Poisoned)?.remove(label);
        Ok(())
    }
}

/// One file per key (hex of the secret), created with mode 0600 in a directory of mode 0700,
/// written to a temporary name and renamed so a crash never leaves half a key.
#[derive(Debug)]
pub struct FileKeyStore {
    dir: PathBuf,
}

fn io(path: &Path, source: std::io::Error) -> KeyStoreError {
    KeyStoreError::Io { path: path.display().to_string(), source }
}

impl FileKeyStore {
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: &Path) -> Result<Self, KeyStoreError> {
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| io(dir, e))?;
        }
        Ok(Self { dir: dir.to_owned() })
    }

    fn path(&self, label: &str) -> PathBuf {
        // Labels are hex; anything else is reduced to safe characters.
        let safe: String = label.chars().filter(char::is_ascii_alphanumeric).collect();
        self.dir.join(format!("{safe}.key"))
    }
}

impl KeyStore for FileKeyStore {
    fn put(&self, label: &str, key: &SecretKey) -> Result<(), KeyStoreError> {
        let path = self.path(label);
        let tmp = path.with_extension("tmp");
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| io(&tmp, e))?;
        file.write_all(hex::encode(key.to_bytes()).as_bytes()).map_err(|e| io(&tmp, e))?;
        file.sync_all().map_err(|e| io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    }

    fn get(&self, label: &str) -> Result<Option<SecretKey>, KeyStoreError> {
        let path = self.path(label);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path, e)),
        };
        paystreams_lez_core::crypto::secret_key_from_hex(text.trim())
            .map(Some)
            .map_err(|_| KeyStoreError::Corrupt(path.display().to_string()))
    }

    fn remove(&self, label: &str) -> Result<(), KeyStoreError> {
        let path = self.path(label);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_round_trip_at_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileKeyStore::open(&dir.path().join("keys")).expect("open");
        let key = SecretKey::from_bytes(&[7; 32]).expect("key");
        store.put("abcd", &key).expect("put");
        assert_eq!(store.get("abcd").expect("get").map(|k| k.to_bytes()), Some(key.to_bytes()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join("keys/abcd.key")).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.remove("abcd").expect("remove");
        assert!(store.get("abcd").expect("get").is_none());
        store.remove("abcd").expect("idempotent");
        let memory = MemoryKeyStore::default();
        memory.put("x", &key).expect("put");
        assert!(memory.get("x").expect("get").is_some());
    }
}
