//! Headless Chromium (Debian's `chromium`, which `scripts/prerequisites.sh`
//! installs): a page's DOM after its scripts ran, and a screenshot of it.
//! A test that needs it fails, naming what to install, when it is missing.

use std::path::Path;
use std::process::Command;

/// The browser: `TESTLAYER_CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> String {
    std::env::var("TESTLAYER_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

fn headless(page: &Path, extra: &[&str]) -> std::process::Output {
    let url = format!(
        "file://{}",
        page.canonicalize().expect("the page exists").display()
    );
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1200,900",
        ])
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): install Chromium (Debian: apt-get install chromium; scripts/prerequisites.sh does)",
                chromium()
            )
        })
}

/// The DOM of `page` after its scripts ran.
pub fn dom(page: &Path) -> String {
    let out = headless(page, &["--dump-dom", "--virtual-time-budget=5000"]);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A screenshot of `page`: (width, height, RGBA pixels).
pub fn screenshot(page: &Path, dir: &Path) -> (u32, u32, Vec<u8>) {
    let shot = dir.join("screenshot.png");
    let arg = format!("--screenshot={}", shot.display());
    let out = headless(page, &[&arg, "--virtual-time-budget=5000"]);
    assert!(
        out.status.success() && shot.exists(),
        "chromium made no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("the screenshot"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, rgba)
}

/// How much of an RGBA picture is not white, and how many colours it has.
pub fn ink(rgba: &[u8]) -> (f64, usize) {
    let pixels: Vec<[u8; 3]> = rgba.chunks(4).map(|p| [p[0], p[1], p[2]]).collect();
    let inked = pixels.iter().filter(|p| p.iter().any(|&c| c < 240)).count();
    let colours: std::collections::BTreeSet<[u8; 3]> = pixels.iter().copied().collect();
    (inked as f64 / pixels.len().max(1) as f64, colours.len())
}
