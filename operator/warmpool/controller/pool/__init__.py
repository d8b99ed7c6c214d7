"""The pool reconciler: one InferencePool from what was observed to what is applied and
reported (validate, decide through scaling/, render through render/, apply, status, Events)."""
