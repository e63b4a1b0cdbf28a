"""The modules the engine itself runs beside a candidate: torch's layers on ATen's own
kernels (`aten`, the oracle's reference) and the textbook recurrence (`loop`, which the
activation probes perturb). The built-ins ``torch-aten*`` and ``loop*`` (impls/) are
these modules registered as implementations; the engine never imports impls/."""
