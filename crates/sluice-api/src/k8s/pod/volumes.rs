//! Volumes: one source each, unique DNS-label names.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Volume;

use super::super::field::{ErrorList, FieldError, Path};
use super::super::names;
use super::super::quantity::Quantity;

/// `ValidateVolumes`: each volume has one source and a unique DNS-label name. Returns the
/// names of the valid ones (what volume mounts may refer to).
pub(super) fn volumes(list: &[Volume], path: &Path, errs: &mut ErrorList) -> HashSet<String> {
    let mut valid = HashSet::new();
    for (i, v) in list.iter().enumerate() {
        let at = path.index(i);
        let mut own = volume_source(v, &at);
        if v.name.is_empty() {
            own.push(FieldError::required(at.child("name"), ""));
        } else {
            for m in names::dns1123_label(&v.name) {
                own.push(FieldError::invalid_str(at.child("name"), &v.name, m));
            }
        }
        if valid.contains(&v.name) {
            own.push(FieldError::duplicate(at.child("name"), &v.name));
        }
        if own.is_empty() {
            valid.insert(v.name.clone());
        } else {
            errs.extend(own);
        }
    }
    valid
}

/// Exactly one source per volume (upstream's order and field names, `downwarAPI` included),
/// and the required name of the common ones.
fn volume_source(v: &Volume, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let present = [
        ("emptyDir", v.empty_dir.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephFS", v.cephfs.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("downwarAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("configMap", v.config_map.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("storageos", v.storageos.is_some()),
        ("projected", v.projected.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ];
    let mut count = 0;
    for (name, is_set) in present {
        if !is_set {
            continue;
        }
        if count > 0 {
            errs.push(FieldError::forbidden(
                path.child(name),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        match name {
            "emptyDir" => {
                let negative = v
                    .empty_dir
                    .as_ref()
                    .and_then(|e| e.size_limit.as_ref())
                    .and_then(|q| Quantity::parse(&q.0).ok())
                    .is_some_and(|q| q.is_negative());
                if negative {
                    errs.push(FieldError::forbidden(
                        path.child("emptyDir").child("sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    ));
                }
            }
            "hostPath" if v.host_path.as_ref().is_some_and(|h| h.path.is_empty()) => {
                errs.push(FieldError::required(
                    path.child("hostPath").child("path"),
                    "",
                ));
            }
            "secret"
                if v.secret
                    .as_ref()
                    .is_some_and(|s| s.secret_name.as_deref().unwrap_or_default().is_empty()) =>
            {
                errs.push(FieldError::required(
                    path.child("secret").child("secretName"),
                    "",
                ));
            }
            "persistentVolumeClaim"
                if v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|p| p.claim_name.is_empty()) =>
            {
                errs.push(FieldError::required(
                    path.child("persistentVolumeClaim").child("claimName"),
                    "",
                ));
            }
            "configMap" if v.config_map.as_ref().is_some_and(|c| c.name.is_empty()) => {
                errs.push(FieldError::required(
                    path.child("configMap").child("name"),
                    "",
                ));
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(FieldError::required(
            path.clone(),
            "must specify a volume type",
        ));
    }
    errs
}
