//! From the paths a file writes to the files that define what they name.

use std::path::PathBuf;

use syn::visit::Visit;

use super::modules::{ModPath, ModuleTree, absolute};

/// How many re-exports a path is followed through before giving up.
const MAX_HOPS: usize = 32;

/// Every (importing file, imported file, path as written) of `tree`.
pub fn edges(tree: &ModuleTree) -> Vec<(PathBuf, PathBuf, String)> {
    let mut out = Vec::new();
    for (file, path, ast) in &tree.parsed {
        let mut c = Collector {
            tree,
            file,
            at: path.clone(),
            in_use: false,
            out: &mut out,
        };
        c.visit_file(ast);
    }
    out
}

/// The file defining what absolute `path` names, following `use`
/// bindings and globs; `None` for anything outside the crate.
fn resolve<'t>(tree: &'t ModuleTree, path: &[String], hops: usize) -> Option<&'t PathBuf> {
    if hops > MAX_HOPS {
        return None;
    }
    let k = (0..=path.len())
        .rev()
        .find(|k| tree.modules.contains_key(&path[..*k]))?;
    let module = &tree.modules[&path[..k]];
    let Some(name) = path.get(k) else {
        return Some(&module.file);
    };
    if module.items.contains(name) {
        return Some(&module.file);
    }
    if let Some(target) = module.uses.get(name) {
        let mut next = target.clone();
        next.extend(path[k + 1..].iter().cloned());
        if next.as_slice() == path {
            return None;
        }
        return resolve(tree, &next, hops + 1);
    }
    module.globs.iter().find_map(|g| {
        let mut next = g.clone();
        next.extend(path[k..].iter().cloned());
        resolve(tree, &next, hops + 1)
    })
}

/// Walks one file, recording the files its paths name.
struct Collector<'a> {
    tree: &'a ModuleTree,
    file: &'a PathBuf,
    /// The module being walked (inline modules push their names).
    at: ModPath,
    /// Whether a `use` tree is being read.
    in_use: bool,
    out: &'a mut Vec<(PathBuf, PathBuf, String)>,
}

impl Collector<'_> {
    /// Records the file `segments`, written in the current module, names.
    fn record(&mut self, segments: &[String]) {
        let abs = absolute(&self.at, segments);
        // A lone module name in code is a local variable of that name (a
        // module is no value); `use m;` is recorded by the use tree.
        if segments.len() == 1 && self.tree.modules.contains_key(&abs) && !self.in_use {
            return;
        }
        if let Some(to) = resolve(self.tree, &abs, 0)
            && to != self.file
        {
            self.out
                .push((self.file.clone(), to.clone(), segments.join("::")));
        }
    }

    /// Records every leaf of a `use` tree under `prefix`.
    fn use_tree(&mut self, tree: &syn::UseTree, mut prefix: Vec<String>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix);
            }
            syn::UseTree::Name(syn::UseName { ident })
            | syn::UseTree::Rename(syn::UseRename { ident, .. }) => {
                if ident != "self" {
                    prefix.push(ident.to_string());
                }
                self.record(&prefix);
            }
            syn::UseTree::Glob(_) => self.record(&prefix),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(t, prefix.clone());
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        // A file module is walked as its own file.
        if m.content.is_some() {
            self.at.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.at.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if u.leading_colon.is_none() {
            self.in_use = true;
            self.use_tree(&u.tree, Vec::new());
            self.in_use = false;
        }
    }

    // `pub(crate)` and `pub(super)` name no item.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
            self.record(&segments);
        }
        syn::visit::visit_path(self, p);
    }
}
