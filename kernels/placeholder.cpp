// placeholder until the first op lands
