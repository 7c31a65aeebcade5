//! Clients of a control plane and the kubeconfigs behind them: the admin's
//! (with or without retries), a ServiceAccount's, and any kubeconfig file's.

use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::handle::ControlPlane;
use crate::TestkitError;

impl ControlPlane {
    /// A new client for the admin.
    pub async fn admin_client(&self) -> Result<Client, TestkitError> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// A new client for the admin that does not retry answers 429, 503 and
    /// 504 (kube's default client retries them up to 15 times, with
    /// back-offs that add up to minutes): to see a refused eviction or a
    /// failing log request at once.
    pub async fn admin_client_without_retries(&self) -> Result<Client, TestkitError> {
        client_from_kubeconfig_with(&self.kubeconfig, false).await
    }

    /// Writes a kubeconfig that authenticates as the ServiceAccount
    /// `namespace/name` (which must exist) with a one-hour token, and returns
    /// its path.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, TestkitError> {
        let client = self.admin_client().await?;
        let sas: Api<ServiceAccount> = Api::namespaced(client, namespace);
        let req = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let tr = sas
            .create_token_request(name, &PostParams::default(), &req)
            .await
            .map_err(TestkitError::kube(format!(
                "requesting a token for serviceaccount {namespace}/{name}"
            )))?;
        let token = tr.status.map(|s| s.token).unwrap_or_default();
        let path = self.dir.join(format!("sa-{namespace}-{name}.kubeconfig"));
        write_kubeconfig(
            &path,
            &self.server,
            &self.pki.ca_cert,
            &format!("token: {token}"),
        )?;
        Ok(path)
    }

    /// A new client acting as the ServiceAccount `namespace/name`.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Client, TestkitError> {
        let path = self.service_account_kubeconfig(namespace, name).await?;
        client_from_kubeconfig(&path).await
    }
}

/// A client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client, TestkitError> {
    client_from_kubeconfig_with(path, true).await
}

async fn client_from_kubeconfig_with(path: &Path, retry: bool) -> Result<Client, TestkitError> {
    let bad = |problem: String| TestkitError::Kubeconfig {
        path: path.to_path_buf(),
        problem,
    };
    let kc = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    config.default_retry = retry;
    Client::try_from(config).map_err(TestkitError::kube("building a client"))
}

pub(super) fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    user: &str,
) -> Result<(), TestkitError> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testlayer-test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
         users:\n- name: user\n  user:\n    {user}\ncontexts:\n- name: testlayer-test\n  context:\n    cluster: testlayer-test\n    user: user\n    namespace: default\n\
         current-context: testlayer-test\n",
        ca = ca.display()
    );
    std::fs::write(path, text).map_err(TestkitError::io(format!("writing {}", path.display())))
}
