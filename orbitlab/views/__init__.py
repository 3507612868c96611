"""Views of a plan for people: the picture (``orbitlab diagram``) and the table (``orbitlab show``).

Everything here is a pure function of a :class:`orbitlab.plan.StackPlan` (only
:func:`orbitlab.views.diagram.render` runs Graphviz's ``dot``); nothing here imports Pulumi
or the command line.

- :mod:`orbitlab.views.picture`: what the picture shows (boxes, groups, edges);
- :mod:`orbitlab.views.dot` and :mod:`orbitlab.views.mermaid`: that picture as Graphviz DOT
  or Mermaid flowchart text;
- :mod:`orbitlab.views.diagram`: formats, and SVG through ``dot``;
- :mod:`orbitlab.views.table`: the allocation table and its JSON.
"""
