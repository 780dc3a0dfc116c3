//! The bearer token, read from a file (the pod's projected service-account token) and read again
//! when the file changes, so a rotated token is used at once.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

pub struct TokenFile {
    path: PathBuf,
    /// The token and the modification time it was read at.
    cached: Mutex<Option<(SystemTime, String)>>,
}

impl TokenFile {
    pub fn new(path: PathBuf) -> Self {
        TokenFile {
            path,
            cached: Mutex::new(None),
        }
    }

    /// The current token; an error names the file.
    pub fn get(&self) -> Result<String, String> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .map_err(|e| format!("cannot read the token file {}: {e}", self.path.display()))?;
        let mut cached = self
            .cached
            .lock()
            .map_err(|_| "token cache poisoned".to_owned())?;
        if let Some((at, token)) = cached.as_ref()
            && *at == modified
        {
            return Ok(token.clone());
        }
        let token = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read the token file {}: {e}", self.path.display()))?
            .trim()
            .to_owned();
        *cached = Some((modified, token.clone()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_token_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let t = TokenFile::new(path.clone());
        assert_eq!(t.get().unwrap(), "first");
        // A new file in its place (as the kubelet swaps a projected token), a new mtime.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let next = dir.path().join("token.new");
        std::fs::write(&next, "second").unwrap();
        std::fs::rename(&next, &path).unwrap();
        let f = std::fs::File::options().append(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(1))
            .unwrap();
        assert_eq!(t.get().unwrap(), "second");
        std::fs::remove_file(&path).unwrap();
        assert!(t.get().unwrap_err().contains("cannot read the token file"));
    }
}
