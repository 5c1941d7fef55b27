"""The fleet: what runs is what was published, and it is replaced, never patched.

manifest  every file of an image, as a signed in-toto statement (DSSE)
attest    the manifest beside the image in the registry, and back, verified
drift     a running container against its image's manifest
remote    a VM against its disk's image, over SSH
swarm     the one door to Docker Swarm services
deploy    channels to services: canary, start-first rolling updates, rollback, replace,
          and the nightly's candidate -> canaries -> stable -> fleet
"""
