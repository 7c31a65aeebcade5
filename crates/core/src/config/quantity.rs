//! Kubernetes resource quantities (`500m`, `1.5`, `512Mi`, `2G`) as plain integers.

/// Parses a CPU quantity into millicores. `None` when it is not a valid quantity.
pub fn parse_cpu_millis(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, scale) = match s.strip_suffix('m') {
        Some(n) => (n, 1.0),
        None => (s, 1000.0),
    };
    let v = parse_decimal(num)? * scale;
    to_whole(v)
}

/// Parses a memory quantity into bytes. `None` when it is not a valid quantity.
pub fn parse_memory_bytes(s: &str) -> Option<u64> {
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let s = s.trim();
    let (num, scale) = SUFFIXES
        .iter()
        .find_map(|(suf, mul)| s.strip_suffix(suf).map(|n| (n, *mul)))
        .unwrap_or((s, 1.0));
    let v = parse_decimal(num)? * scale;
    to_whole(v)
}

/// Formats millicores the way Kubernetes prints them.
pub fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Formats bytes with the largest binary suffix that divides them.
pub fn format_memory(bytes: u64) -> String {
    for (suf, mul) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= mul && bytes.is_multiple_of(mul) {
            return format!("{}{suf}", bytes / mul);
        }
    }
    bytes.to_string()
}

/// A plain non-negative decimal (`1`, `0.5`, `.5`); no signs, exponents or spaces.
fn parse_decimal(s: &str) -> Option<f64> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if s.chars().filter(|c| *c == '.').count() > 1 || s == "." {
        return None;
    }
    s.parse::<f64>().ok()
}

fn to_whole(v: f64) -> Option<u64> {
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 / 2.0 {
        return None;
    }
    Some(v.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(parse_cpu_millis("500m"), Some(500));
        assert_eq!(parse_cpu_millis("2"), Some(2000));
        assert_eq!(parse_cpu_millis("0.25"), Some(250));
        assert_eq!(parse_cpu_millis(".5"), Some(500));
        assert_eq!(parse_cpu_millis("1.0005"), Some(1001));
        for bad in ["", "m", "-1", "1e3", "one", "1.2.3", "2Gi", " "] {
            assert_eq!(parse_cpu_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn memory() {
        assert_eq!(parse_memory_bytes("512Mi"), Some(512 << 20));
        assert_eq!(parse_memory_bytes("1Gi"), Some(1 << 30));
        assert_eq!(parse_memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory_bytes("128974848"), Some(128_974_848));
        assert_eq!(parse_memory_bytes("1.5Gi"), Some(1_610_612_736));
        for bad in ["", "Mi", "-1Gi", "1GB", "lots", "1 Gi"] {
            assert_eq!(parse_memory_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for m in [1, 250, 1000, 1500, 64_000] {
            assert_eq!(parse_cpu_millis(&format_cpu(m)), Some(m));
        }
        for b in [1, 1024, 3 << 20, 5 << 30, 1_000_000] {
            assert_eq!(parse_memory_bytes(&format_memory(b)), Some(b));
        }
    }
}
