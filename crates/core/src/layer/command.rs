//! Command templates: `{category}` and `{layer}` substitution, and the
//! variable that tells a command its attempt.

/// The variable that tells a command which attempt it is (1-based).
pub const ATTEMPT_ENV: &str = "TESTLAYER_ATTEMPT";

/// A command template with `{category}` and `{layer}` substituted, in one
/// pass (a substituted name is never substituted again).
pub fn substitute_command(template: &str, layer: &str, category: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(t) = tail.strip_prefix("{category}") {
            out.push_str(category);
            rest = t;
        } else if let Some(t) = tail.strip_prefix("{layer}") {
            out.push_str(layer);
            rest = t;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_is_one_pass() {
        assert_eq!(
            substitute_command("pytest -m {category} --layer={layer} {x}", "fast", "smoke"),
            "pytest -m smoke --layer=fast {x}"
        );
        assert_eq!(substitute_command("{category}", "L", "{layer}"), "{layer}");
        assert_eq!(substitute_command("{{category}}", "L", "c"), "{c}");
    }
}
