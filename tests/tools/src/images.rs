//! The product's container images (`make images`): OCI image layouts, tarred, unpacked here the way
//! a container runtime would — index → manifest → config and layers, every blob checked against
//! its digest — into a root filesystem whose binary the tests then run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use crate::repo_root;

/// The two images, by binary name.
pub const IMAGES: [&str; 2] = ["wfe-controller", "wfe-webhook"];

/// Where `scripts/build-images.sh` writes `<name>.oci.tar` (unless IMAGES_DIR says otherwise).
pub fn images_dir() -> PathBuf {
    std::env::var_os("IMAGES_DIR")
        .map(PathBuf::from)
        .map(|d| {
            if d.is_absolute() {
                d
            } else {
                repo_root().join(d)
            }
        })
        .unwrap_or_else(|| repo_root().join("target/images"))
}

/// An image unpacked into `root`, with what its config says about running it.
#[derive(Debug)]
pub struct Unpacked {
    pub root: PathBuf,
    pub entrypoint: Vec<String>,
    pub user: String,
    pub env: Vec<String>,
    pub labels: serde_json::Map<String, Value>,
    /// Compressed size of the layers, in bytes (what a node pulls).
    pub layers_bytes: u64,
}

impl Unpacked {
    /// The entrypoint's binary inside the unpacked root.
    pub fn binary(&self) -> anyhow::Result<PathBuf> {
        let first = self
            .entrypoint
            .first()
            .context("the image has no entrypoint")?;
        Ok(self.root.join(first.trim_start_matches('/')))
    }
}

/// Unpacks `<images_dir>/<name>.oci.tar` into `dest` (which must not exist yet). Fails when the
/// tarball is missing: `make images` (part of `make test`) builds it.
pub fn unpack(name: &str, dest: &Path) -> anyhow::Result<Unpacked> {
    let tarball = images_dir().join(format!("{name}.oci.tar"));
    ensure!(
        tarball.is_file(),
        "{} is missing: build the images with `make images` (make test does)",
        tarball.display()
    );
    let layout = dest.join("layout");
    let root = dest.join("root");
    std::fs::create_dir_all(&layout)?;
    std::fs::create_dir_all(&root)?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&layout))?;
    let index = json(&layout.join("index.json"))?;
    let manifests = index["manifests"]
        .as_array()
        .context("index.json has no manifests")?;
    ensure!(
        manifests.len() == 1,
        "one image per tarball, got {}",
        manifests.len()
    );
    let manifest = blob(&layout, &manifests[0])?;
    ensure!(
        manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json",
        "not an OCI image manifest: {}",
        manifest["mediaType"]
    );
    let config = blob(&layout, &manifest["config"])?;
    ensure!(
        config["os"] == "linux" && config["architecture"] == "amd64",
        "platform {}/{}",
        config["os"],
        config["architecture"]
    );
    let mut layers_bytes = 0;
    for layer in manifest["layers"]
        .as_array()
        .context("manifest has no layers")?
    {
        let path = blob_path(&layout, layer)?;
        layers_bytes += std::fs::metadata(&path)?.len();
        run(Command::new("tar")
            .arg("-xzf")
            .arg(&path)
            .arg("-C")
            .arg(&root))?;
    }
    let cfg = &config["config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Unpacked {
        root,
        entrypoint: strings(&cfg["Entrypoint"]),
        user: cfg["User"].as_str().unwrap_or_default().to_owned(),
        env: strings(&cfg["Env"]),
        labels: cfg["Labels"].as_object().cloned().unwrap_or_default(),
        layers_bytes,
    })
}

/// The blob a descriptor names, after checking its size and digest.
fn blob_path(layout: &Path, descriptor: &Value) -> anyhow::Result<PathBuf> {
    let digest = descriptor["digest"]
        .as_str()
        .context("descriptor without digest")?;
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("unsupported digest {digest}"))?;
    let path = layout.join("blobs/sha256").join(hex);
    let size = std::fs::metadata(&path)
        .with_context(|| format!("blob {digest} missing"))?
        .len();
    ensure!(
        descriptor["size"].as_u64() == Some(size),
        "blob {digest}: size {size}, descriptor says {}",
        descriptor["size"]
    );
    let out = Command::new("sha256sum").arg(&path).output()?;
    let actual = String::from_utf8_lossy(&out.stdout);
    ensure!(
        actual.split_whitespace().next() == Some(hex),
        "blob {digest} does not match its digest ({actual})"
    );
    Ok(path)
}

fn blob(layout: &Path, descriptor: &Value) -> anyhow::Result<Value> {
    json(&blob_path(layout, descriptor)?)
}

fn json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_slice(&text)?)
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Whether an ELF file is statically linked: no program interpreter and no shared library
/// needed (a static-pie binary keeps a dynamic section for relocating itself, without DT_NEEDED).
pub fn is_static_elf(path: &Path) -> anyhow::Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        bytes.get(..4) == Some(b"\x7fELF"),
        "{} is not an ELF file",
        path.display()
    );
    ensure!(bytes.get(4) == Some(&2), "not a 64-bit ELF");
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let header = |o| u64_at(o).context("truncated ELF header");
    let phoff = header(0x20)? as usize;
    let phentsize = u16_at(0x36).context("truncated ELF header")? as usize;
    let phnum = u16_at(0x38).context("truncated ELF header")? as usize;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NEEDED: u64 = 1;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        match u32_at(at).context("truncated program header")? {
            PT_INTERP => return Ok(false),
            PT_DYNAMIC => {
                let offset = u64_at(at + 8).context("truncated program header")? as usize;
                let size = u64_at(at + 32).context("truncated program header")? as usize;
                for entry in (offset..offset + size).step_by(16) {
                    if u64_at(entry) == Some(DT_NEEDED) {
                        return Ok(false);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(true)
}
