"""The graph IR: symbolic tracing into a networkx ``MultiDiGraph``
(:mod:`.trace`), the reference interpreter that every pass and kernel is
checked against (:mod:`.interpreter`), backward graphs derived from the
registry's gradient rules (:mod:`.backward`), the versioned JSON form
(:mod:`.serialize`) and DOT drawing (:mod:`.dot`)."""
