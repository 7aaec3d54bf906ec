"""zoo and timm: ``from_timm`` builds timm's models for small images (``zoo.create("timm/<name>")``),
``to_timm`` registers zoo's models in timm's registry (``timm.create_model("zoo_resnet20")``)."""
