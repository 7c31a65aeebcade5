//! The module tree of one crate: which file holds each module, and what
//! names each module defines or brings into scope.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::error::ImportsError;

/// A module path from the crate root (`[]` is the root).
pub type ModPath = Vec<String>;

/// One module: its file and the names it binds.
#[derive(Debug, Default)]
pub struct Module {
    /// The file holding it (an inline module's is its parent's).
    pub file: PathBuf,
    /// Names of items defined here (functions, types, traits, constants,
    /// macros, submodules).
    pub items: BTreeSet<String>,
    /// Names a `use` binds here, to the absolute path they name.
    pub uses: BTreeMap<String, ModPath>,
    /// Modules whose names a glob `use` brings in.
    pub globs: Vec<ModPath>,
}

/// Every module of a crate and the parsed files.
#[derive(Default)]
pub struct ModuleTree {
    /// Modules by path.
    pub modules: BTreeMap<ModPath, Module>,
    /// The parsed files, each with the path of the module it holds.
    pub parsed: Vec<(PathBuf, ModPath, syn::File)>,
}

impl ModuleTree {
    /// The tree of the crate whose root file is `root`.
    pub fn load(root: &Path) -> Result<ModuleTree, ImportsError> {
        let mut tree = ModuleTree::default();
        let dir = root.parent().unwrap_or(Path::new(".")).to_path_buf();
        tree.load_file(root, Vec::new(), dir)?;
        Ok(tree)
    }

    /// The files of the crate.
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.parsed.iter().map(|(f, _, _)| f)
    }

    /// Parses `file` as module `path`, whose `mod x;` children live in
    /// `children`.
    fn load_file(
        &mut self,
        file: &Path,
        path: ModPath,
        children: PathBuf,
    ) -> Result<(), ImportsError> {
        let text = std::fs::read_to_string(file).map_err(|source| ImportsError::Read {
            path: file.to_path_buf(),
            source,
        })?;
        let ast = syn::parse_file(&text).map_err(|e| ImportsError::Parse {
            path: file.to_path_buf(),
            message: e.to_string(),
        })?;
        self.load_items(file, &path, &children, &ast.items)?;
        self.parsed.push((file.to_path_buf(), path, ast));
        Ok(())
    }

    /// Records `items` as module `path` held in `file`, and loads its
    /// submodules.
    fn load_items(
        &mut self,
        file: &Path,
        path: &ModPath,
        children: &Path,
        items: &[syn::Item],
    ) -> Result<(), ImportsError> {
        let mut module = Module {
            file: file.to_path_buf(),
            ..Module::default()
        };
        let mut subs = Vec::new();
        for item in items {
            if let Some(name) = item_name(item) {
                module.items.insert(name);
            }
            match item {
                syn::Item::Use(u) => bind(&mut module, path, &u.tree, Vec::new()),
                syn::Item::Mod(m) => subs.push(m),
                _ => {}
            }
        }
        self.modules.insert(path.clone(), module);
        for m in subs {
            let name = m.ident.to_string();
            let mut sub = path.clone();
            sub.push(name.clone());
            match &m.content {
                Some((_, inner)) => self.load_items(file, &sub, &children.join(&name), inner)?,
                None => {
                    let (sub_file, sub_children) = module_file(file, children, m)?;
                    self.load_file(&sub_file, sub, sub_children)?;
                }
            }
        }
        Ok(())
    }
}

/// The file of `mod name;` declared in `file` (children in `children`)
/// and the directory of its own children.
fn module_file(
    file: &Path,
    children: &Path,
    m: &syn::ItemMod,
) -> Result<(PathBuf, PathBuf), ImportsError> {
    let name = m.ident.to_string();
    let explicit = m.attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    });
    if let Some(p) = explicit {
        let f = file.parent().unwrap_or(Path::new(".")).join(p);
        let dir = f.parent().unwrap_or(Path::new(".")).to_path_buf();
        return Ok((f, dir));
    }
    let flat = children.join(format!("{name}.rs"));
    if flat.is_file() {
        return Ok((flat, children.join(&name)));
    }
    let nested = children.join(&name).join("mod.rs");
    if nested.is_file() {
        return Ok((nested, children.join(&name)));
    }
    Err(ImportsError::MissingModule {
        path: file.to_path_buf(),
        name,
    })
}

/// The name an item defines, if any.
fn item_name(item: &syn::Item) -> Option<String> {
    let ident = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Mod(i) => &i.ident,
        syn::Item::Static(i) => &i.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::TraitAlias(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        syn::Item::Macro(i) => i.ident.as_ref()?,
        _ => return None,
    };
    Some(ident.to_string())
}

/// Records the names `tree` binds in `module` (at `path`), under `prefix`.
fn bind(module: &mut Module, path: &ModPath, tree: &syn::UseTree, mut prefix: Vec<String>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            bind(module, path, &p.tree, prefix);
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.last().cloned() {
                    module.uses.insert(last, absolute(path, &prefix));
                }
            } else {
                prefix.push(name.clone());
                module.uses.insert(name, absolute(path, &prefix));
            }
        }
        syn::UseTree::Rename(r) => {
            let name = r.ident.to_string();
            if name != "self" {
                prefix.push(name);
            }
            module
                .uses
                .insert(r.rename.to_string(), absolute(path, &prefix));
        }
        syn::UseTree::Glob(_) => module.globs.push(absolute(path, &prefix)),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                bind(module, path, t, prefix.clone());
            }
        }
    }
}

/// `segments` written in module `at`, as a path from the crate root:
/// `crate`, `self` and `super` are read; anything else is taken relative
/// to `at` (a name in scope there; an external crate resolves to nothing).
pub fn absolute(at: &ModPath, segments: &[String]) -> ModPath {
    let mut out = at.clone();
    let mut rest = segments;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            out.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        _ => {}
    }
    while rest.first().map(String::as_str) == Some("super") {
        out.pop();
        rest = &rest[1..];
    }
    out.extend(rest.iter().cloned());
    out
}
