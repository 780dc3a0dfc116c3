//! Installing CRDs: applied from their files, then waited for until established and served.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;

use crate::control_plane::FIELD_MANAGER;

/// Applies each CRD file and waits until every one is established and its resource is served.
pub(crate) async fn install_crds(client: &Client, files: &[PathBuf]) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut installed = Vec::new();
    for file in files {
        let text =
            fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let crd: Value =
            serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        let name = crd["metadata"]["name"]
            .as_str()
            .with_context(|| format!("{} has no metadata.name", file.display()))?
            .to_owned();
        crds.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("installing CRD {name} from {}", file.display()))?;
        installed.push((name, crd));
    }
    for (name, crd) in &installed {
        wait_established(&crds, name).await?;
        wait_served(client, name, crd).await?;
    }
    Ok(())
}

/// Established can precede the resource being served; list it until it is.
async fn wait_served(client: &Client, name: &str, crd: &Value) -> anyhow::Result<()> {
    let spec = &crd["spec"];
    let version = spec["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["served"] == true))
        .and_then(|v| v["name"].as_str())
        .with_context(|| format!("CRD {name} serves no version"))?;
    let resource = ApiResource {
        group: spec["group"].as_str().unwrap_or_default().to_owned(),
        version: version.to_owned(),
        api_version: format!("{}/{version}", spec["group"].as_str().unwrap_or_default()),
        kind: spec["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        plural: spec["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = api.list(&ListParams::default().limit(1)).await {
        if Instant::now() > deadline {
            bail!("{name} is not served 30s after its CRD was established: {e}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn wait_established(crds: &Api<CustomResourceDefinition>, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let crd = crds.get(name).await?;
        let established = crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("CRD {name} not Established after 30s: {:?}", crd.status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
