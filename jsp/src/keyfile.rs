//! Identity key files: `jsp keygen` writes them, `jsp serve --key` reads them.
//!
//! The format is text: comment lines starting with `#` (the public key is noted there for
//! convenience) and one line `jsp-secret:<hex>` holding the core's private key encoding.

use std::io::Write;
use std::path::Path;

use jsp_tokio::jsp_core::crypto::sign::{IdentityKey, SignatureScheme};

use crate::error::CliError;
use crate::{KeygenArgs, Scheme};

const SECRET_PREFIX: &str = "jsp-secret:";

/// `jsp keygen`.
pub(crate) fn keygen(args: &KeygenArgs) -> Result<(), CliError> {
    let scheme = match args.scheme {
        Scheme::Ed25519 => SignatureScheme::Ed25519,
        Scheme::Hybrid => SignatureScheme::Ed25519MlDsa65,
    };
    let key = IdentityKey::generate(scheme, &mut jsp_tokio::os_rng()?);
    let public = key.public();
    let text = format!(
        "# JetStreamProto server identity ({scheme}). PRIVATE: keep this file secret.\n\
         # public key: {public}\n\
         {SECRET_PREFIX}{}\n",
        hex::encode(key.to_bytes())
    );
    write_private(&args.out, text.as_bytes(), args.force)?;
    eprintln!("wrote the private key to {}", args.out.display());
    eprintln!("clients connect with: jsp connect ADDR --server-key {public}");
    println!("{public}");
    Ok(())
}

fn write_private(path: &Path, data: &[u8], force: bool) -> Result<(), CliError> {
    let err = |what: String| CliError::KeyFile {
        path: path.to_owned(),
        what,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            err(
                "already exists; pass --force to overwrite it or --out to choose another file"
                    .into(),
            )
        } else {
            err(format!("cannot create it: {e}"))
        }
    })?;
    file.write_all(data)
        .map_err(|e| err(format!("cannot write it: {e}")))
}

/// Reads a key file written by [`keygen`].
pub(crate) fn load(path: &Path) -> Result<IdentityKey, CliError> {
    let err = |what: String| CliError::KeyFile {
        path: path.to_owned(),
        what,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(format!(
            "cannot read the key file: {e} (create one with `jsp keygen`)"
        ))
    })?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| err("no key in the file (create one with `jsp keygen`)".into()))?;
    let hex = line.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
        err(format!(
            "not a jsp key file: expected a line starting with {SECRET_PREFIX:?}"
        ))
    })?;
    let bytes = hex::decode(hex).map_err(|e| err(format!("the key is not valid hex: {e}")))?;
    IdentityKey::from_bytes(&bytes).map_err(|e| err(format!("the key is invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_file_loads_back_to_the_same_identity() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("k");
        for scheme in [Scheme::Ed25519, Scheme::Hybrid] {
            let args = KeygenArgs {
                out: out.clone(),
                scheme,
                force: true,
            };
            keygen(&args).unwrap();
            let text = std::fs::read_to_string(&out).unwrap();
            let key = load(&out).unwrap();
            assert!(text.contains(&key.public().to_string()));
        }
        let again = KeygenArgs {
            out: out.clone(),
            scheme: Scheme::Ed25519,
            force: false,
        };
        assert!(keygen(&again).unwrap_err().to_string().contains("--force"));
        std::fs::write(&out, "hello").unwrap();
        assert!(load(&out)
            .unwrap_err()
            .to_string()
            .contains("not a jsp key file"));
    }
}
