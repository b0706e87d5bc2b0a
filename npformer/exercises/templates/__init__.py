"""The exercise files `npformer exercise start` copies, one per exercise: the forward given in
its plain form, the backward left for the learner. Each is also a module the reference
solutions (npformer/exercises/solutions.py) subclass, so template and solution cannot drift."""
