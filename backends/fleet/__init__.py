"""`warmgate fleet`: warm SGLang backends launched with SkyPilot, and the backends document.

The fleet commands run where the SkyPilot API server and the cloud credentials are. They launch
the `sky/models/*.yaml` tasks under one naming convention, read back what is UP and READY, and
write the versioned JSON document that edges load and hot-reload. SkyPilot is imported only
inside these commands (`warmgate[fleet]`), never by the gateway.
"""
