"""``make test-kernels``: boot Debian's own kernels under qemu (TCG) and run the agent tier inside.

Host side (``python3 -m tests.kernels run``): fetch each kernel package with ``apt-get download``
into a private apt state directory, build one debootstrap rootfs and one source-tree archive,
boot every matrix entry, read pytest's JUnit XML back from the guest's second serial port and
print a kernel x gadget table. Guest side (``tests.kernels.guest``) is what ``/init`` runs.
Everything expensive is cached under ``/var/cache/kubectl-bpf/kernels``.
"""
