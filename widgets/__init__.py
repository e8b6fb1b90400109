"""rs_embed.widgets: the notebook layer (map ROI picker, export panel, plots).

Built only on rs_embed's public API; the core never imports this package.
"""
