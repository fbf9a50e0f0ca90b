import UMTrainCLI
UMTrainMain.run()
