print("dmsurgery")
