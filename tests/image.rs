//! The Dockerfile's final stage (distroless/cc-debian12) provides glibc and
//! libgcc_s and nothing else: the binary must link against nothing more.

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
    assert!(
        dockerfile.contains("FROM gcr.io/distroless/cc-debian12:nonroot"),
        "the final stage changed: update this test"
    );
    assert!(dockerfile.contains("USER 65532:65532"));
}
