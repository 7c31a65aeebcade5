//! The controller's image as shipped. `scripts/image.sh` builds it without
//! a container engine (an OCI archive: the release binary and exactly the
//! libraries it links, non-root, no shell), and the Dockerfile builds it
//! with one; the tests here read the archive and hold the two to each
//! other: same entrypoint, command, user, port and binary build. The real
//! node runs the archive (`tests/installed.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde_json::Value;
use testlayer_testkit::node::image_archive;

/// What must not grow unnoticed: the compressed image, in bytes.
const MAX_COMPRESSED: u64 = 20 * 1024 * 1024;

/// One file of the image's root filesystem.
struct Entry {
    mode: u32,
    uid: u64,
    is_dir: bool,
    data: Vec<u8>,
}

/// The image: its config (`config` of the OCI image config), its files
/// (layers applied in order), and its compressed size.
struct Image {
    config: Value,
    files: BTreeMap<String, Entry>,
    compressed: u64,
}

fn read_tar<R: Read>(r: R) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut tar = tar::Archive::new(r);
    for e in tar.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let name = e
            .path()
            .expect("entry path")
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let header = e.header();
        let entry = Entry {
            mode: header.mode().expect("mode"),
            uid: header.uid().expect("uid"),
            is_dir: header.entry_type().is_dir(),
            data: Vec::new(),
        };
        let mut entry = entry;
        e.read_to_end(&mut entry.data).expect("entry data");
        out.insert(name, entry);
    }
    out
}

fn read_image(path: &Path) -> Image {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let outer = read_tar(file);
    let json = |name: &str| -> Value {
        let e = outer
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in {}", path.display()));
        serde_json::from_slice(&e.data).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let blob = |digest: &Value| -> &Entry {
        let d = digest.as_str().expect("digest");
        let name = format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
        outer
            .get(&name)
            .unwrap_or_else(|| panic!("{name} is not in the archive"))
    };
    let index = json("index.json");
    let manifest: Value =
        serde_json::from_slice(&blob(&index["manifests"][0]["digest"]).data).expect("manifest");
    let config: Value =
        serde_json::from_slice(&blob(&manifest["config"]["digest"]).data).expect("config");
    let mut files = BTreeMap::new();
    let mut compressed = 0;
    for layer in manifest["layers"].as_array().expect("layers") {
        let data = &blob(&layer["digest"]).data;
        compressed += data.len() as u64;
        files.extend(read_tar(flate2::read::GzDecoder::new(&data[..])));
    }
    Image {
        config: config["config"].clone(),
        files,
        compressed,
    }
}

fn image() -> Image {
    let path = image_archive().unwrap_or_else(|e| panic!("{e}"));
    read_image(&path)
}

/// The final stage of the Dockerfile: each instruction and its argument.
fn dockerfile_final_stage() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .expect("Dockerfile");
    let joined = text.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM line");
    lines[last_from..]
        .iter()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_string(), v.trim().to_string())
        })
        .collect()
}

fn instruction(stage: &[(String, String)], name: &str) -> String {
    stage
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("the Dockerfile's final stage has no {name}"))
}

#[test]
fn the_dockerfile_and_the_built_image_agree() {
    let image = image();
    let stage = dockerfile_final_stage();
    let exec_form = |name: &str| -> Value {
        serde_json::from_str(&instruction(&stage, name))
            .unwrap_or_else(|e| panic!("{name} is not in exec form: {e}"))
    };
    assert_eq!(image.config["Entrypoint"], exec_form("ENTRYPOINT"));
    assert_eq!(image.config["Cmd"], exec_form("CMD"));
    assert_eq!(image.config["User"], instruction(&stage, "USER"));
    let exposed: BTreeSet<String> = instruction(&stage, "EXPOSE")
        .split_whitespace()
        .map(|p| {
            if p.contains('/') {
                p.to_string()
            } else {
                format!("{p}/tcp")
            }
        })
        .collect();
    let image_ports: BTreeSet<String> = image.config["ExposedPorts"]
        .as_object()
        .expect("ExposedPorts")
        .keys()
        .cloned()
        .collect();
    assert_eq!(image_ports, exposed);
    // The binary is copied to the entrypoint's path, built the same way.
    let copy = instruction(&stage, "COPY");
    let entrypoint = image.config["Entrypoint"][0].as_str().expect("entrypoint");
    assert!(copy.ends_with(&format!(" {entrypoint}")), "COPY {copy}");
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/image.sh")).unwrap();
    for step in [
        "cargo build --release --locked --bin testlayer",
        "strip --strip-debug",
    ] {
        assert!(dockerfile.contains(step), "the Dockerfile lacks `{step}`");
        assert!(script.contains(step), "scripts/image.sh lacks `{step}`");
    }
    // The libraries come from Debian 12, as distroless/cc-debian12's do.
    assert_eq!(
        instruction(&stage, "FROM"),
        "gcr.io/distroless/cc-debian12:nonroot"
    );
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    assert!(
        os.contains("VERSION_CODENAME=bookworm"),
        "scripts/image.sh takes glibc from this machine, which is not Debian 12 \
         (bookworm) as the Dockerfile's base is:\n{os}"
    );
}

#[test]
fn the_image_is_small_non_root_and_holds_only_the_binary_and_what_it_links() {
    let image = image();
    eprintln!(
        "the controller's image: {:.1} MiB compressed, {} files",
        image.compressed as f64 / 1048576.0,
        image.files.len()
    );
    assert!(
        image.compressed <= MAX_COMPRESSED,
        "the image grew to {} bytes (bound {MAX_COMPRESSED})",
        image.compressed
    );
    assert_eq!(image.config["User"], "65532:65532");
    let passwd = String::from_utf8_lossy(&image.files["etc/passwd"].data).to_string();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
    assert_eq!(image.files["home/nonroot"].uid, 65532);
    assert_eq!(image.files["tmp"].mode & 0o7777, 0o1777);

    // The binary runs (with this machine's loader) and is this version.
    let entrypoint = image.config["Entrypoint"][0]
        .as_str()
        .expect("entrypoint")
        .trim_start_matches('/');
    let binary = &image.files[entrypoint];
    assert_eq!(
        binary.mode & 0o111,
        0o111,
        "the binary is executable by all"
    );
    let dir = tempfile::tempdir().unwrap();
    let extracted = dir.path().join("testlayer");
    std::fs::write(&extracted, &binary.data).unwrap();
    std::fs::set_permissions(
        &extracted,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = std::process::Command::new(&extracted)
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        version.trim(),
        format!("testlayer {}", env!("CARGO_PKG_VERSION"))
    );

    // Exactly the libraries the binary links, at the paths the loader
    // takes them from; nothing else but the few files a process expects.
    let ldd = std::process::Command::new("ldd")
        .arg(&extracted)
        .output()
        .unwrap();
    let linked: BTreeSet<String> = String::from_utf8_lossy(&ldd.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            match l.split_once(" => ") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => l.split_whitespace().next().filter(|p| p.starts_with('/')),
            }
        })
        .map(|p| p.trim_start_matches('/').to_string())
        .collect();
    assert!(linked.iter().any(|l| l.contains("libc.so")), "{linked:?}");
    let files: BTreeSet<String> = image
        .files
        .iter()
        .filter(|(_, e)| !e.is_dir)
        .map(|(n, _)| n.clone())
        .collect();
    let mut expected = linked.clone();
    expected.extend(
        [
            entrypoint,
            "etc/passwd",
            "etc/group",
            "etc/ssl/certs/ca-certificates.crt",
        ]
        .map(String::from),
    );
    assert_eq!(files, expected, "the image's files");
    assert!(
        !image.files.contains_key("bin/sh"),
        "the image has no shell"
    );
}

/// distroless/cc-debian12, the Dockerfile's base, provides glibc and
/// libgcc_s and nothing else: the binary must link against nothing more.
#[test]
fn the_binary_links_only_what_the_final_image_provides() {
    let bin = env!("CARGO_BIN_EXE_testlayer");
    let out = std::process::Command::new("ldd")
        .arg(bin)
        .output()
        .expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    let allowed = [
        "linux-vdso.so",
        "libc.so",
        "libm.so",
        "libgcc_s.so",
        "ld-linux-x86-64.so",
        "ld-linux-aarch64.so",
        "libpthread.so",
        "libdl.so",
        "librt.so",
    ];
    let libs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        libs.iter().any(|l| l.starts_with("libc.so")),
        "unexpected ldd output: {text}"
    );
    for lib in &libs {
        let name = lib.rsplit('/').next().unwrap_or(lib);
        assert!(
            allowed.iter().any(|a| name.starts_with(a)),
            "{name} is not in distroless/cc-debian12:\n{text}"
        );
    }
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(dockerfile.contains("USER 65532:65532"));
}
