"""Releasing verified artifacts: publish, sign, attest, channels, revocations, pull, catalog.

Imports point one way: kiln.commands (and nightly) -> kiln.release -> registry / signing.
Inside the package, from the bottom up:

  errors      the typed refusals (PublishError, TrustError and its kinds)
  names       tags, channel tags, specs: pure functions
  session     one run against a registry (project, config, client, engine)
  oci         OCI manifests and artifacts over the registry client; the layer push
  lease       the registry-recorded lease that serializes writers of one tag
  cosign      cosign-format signatures (.sig), DSSE envelopes and attestations (.att)
  seen        the highest sequence / version this machine has seen (state folder)
  revocations the signed, versioned revocation list
  chain       a channel's moves as a chain of signed, sequenced documents
  provenance  what kiln says about an artifact (verification record, SLSA, CycloneDX)
  trust       signature + attestations + revocation -> Trust, or a typed refusal
  channels    promote, rollback, history, revoke
  keys        pinning the project key id in kiln.toml
  publish     the one publish skeleton for any Artifact
  container   the container image Artifact, and pull
  vmdisk      the VM disk Artifact, and pull
  catalog     what the registry holds, and in what state
  api         the surface commands and nightly use
"""
