// placeholder: implemented by the owning stage
