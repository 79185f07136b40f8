"""Taking the captures: tcpdump in a container's namespace and on the host's uplink at once."""
