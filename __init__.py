"""ComfyUI entry point: the repository root is a ComfyUI custom-node folder.

ComfyUI imports this file as a package when the repository is cloned into
``ComfyUI/custom_nodes/``. It only re-exports the node mappings. The import is relative on
purpose: ComfyUI has a top-level module called ``nodes`` of its own.
"""

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:  # imported alone, not as a package: pytest collecting a checkout whose folder name is no identifier
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
