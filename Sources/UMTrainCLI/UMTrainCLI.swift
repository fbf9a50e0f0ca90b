public enum UMTrainMain { public static func run() {} }
