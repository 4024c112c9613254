"""sacmap detection: HAADF-STEM image reading, CNN atom detection, multimer splitting, element labelling, simulator.

Coordinates: x = column, y = row, px (origin at the centre of the top-left pixel); nm via the pixel size.
Imports nothing else of sacmap.
"""
