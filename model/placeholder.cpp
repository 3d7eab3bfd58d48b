// placeholder until model code lands
