"""The kubectl plugin's front: click commands (root.py), human output (render.py).

Empty on purpose: gadget commands import ``cli.render`` and ``cli.root``
imports the gadget commands, so nothing may be imported here.
"""
