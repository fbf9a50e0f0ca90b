import XCTest
@testable import NeuralNetwork

final class NeuralNetworkPlaceholderTests: XCTestCase {
    func testModuleLinks() { XCTAssertTrue(true) }
}
